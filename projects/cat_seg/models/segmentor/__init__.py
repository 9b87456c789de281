"""The CAT-Seg segmentor: the shared feature path, training loss, whole-image and sliding-window
inference (App. A.3) and their typed settings."""
