"""Helpers every room uses, importing nothing of ppgen's: argument checks and their messages, seeds, query budgets,
progress bars."""
