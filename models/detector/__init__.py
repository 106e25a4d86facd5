"""LineCheck's own anchor-free detector: model, loss, metrics, YOLO-format data."""
