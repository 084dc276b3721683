"""xmodal training: the model library (towers, heads, losses), corpus formats and the trainer."""
