"""Figures: colour masks and overlays (`viz`), training curves, per-class IoU and confusion
matrices (`plots`), the score table (`scores`) and the images the notebook shows
(`notebook_images`).
"""
