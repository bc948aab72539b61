"""Inference: what prediction takes in (`inputs`), prediction at the input's own resolution
(`predict`), int8 programs (`int8`), image and video files (`segment`, `video`), and scoring a
split at each image's original resolution (`evaluation`).
"""
