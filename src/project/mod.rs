//! 2-D maps of the embedding space: UMAP and t-SNE layouts with quality measures,
//! scatter plots, the interactive HTML map, exports, nearest-neighbour galleries.
