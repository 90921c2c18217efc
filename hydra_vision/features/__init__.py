"""Image feature extraction: pooled embeddings and dense feature maps, sharded writer, k-NN."""
