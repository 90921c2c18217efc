"""Image feature extraction: pooled embeddings and dense feature maps, sharded writer, k-NN."""
from .extractor import FeatureExtractor
from .inputs import ImageList, list_images
from .knn import knn_scores, topk_accuracy
from .pipeline import ExtractionResult, extract_to_file
from .store import read_features
from .visualize import pca_map, save_pca_grid

__all__ = [
    "ExtractionResult",
    "FeatureExtractor",
    "ImageList",
    "extract_to_file",
    "knn_scores",
    "list_images",
    "pca_map",
    "read_features",
    "save_pca_grid",
    "topk_accuracy",
]
