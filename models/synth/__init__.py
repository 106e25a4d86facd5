"""Synthetic labelled images of manufactured parts with surface defects (see render.py)."""

from .render import CLASSES, render

__all__ = ["CLASSES", "render"]
