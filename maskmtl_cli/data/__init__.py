"""Data layer: labels from names or CSV, manifests, splits and the cached image loader."""
