"""The OCR feedback loop: readings, their error probability, corrections, labelling, quality."""
