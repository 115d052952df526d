export {
  ALWAYS_INCLUDED_POPULARITY,
  DEFAULT_POPULARITY,
  HEAVY_NAR_SIZE,
  InvalidBudgetError,
  InvalidGraphError,
  LayerGroupingError,
  POPULAR_THRESHOLD,
  groupLayers,
  pathPopularity,
} from './group.ts';
export type { GroupOptions, LayerGroup, Popularity, StorePathNode } from './group.ts';
export {
  DEFAULT_POPULARITY_TIMEOUT_MS,
  PopularityError,
  loadPopularity,
  parsePopularity,
  storePathName,
} from './popularity.ts';
export type { LoadPopularityOptions } from './popularity.ts';
