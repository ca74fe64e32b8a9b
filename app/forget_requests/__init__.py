"""Detecting forget requests ("forget my address") in messages: the patterns, the classifier prompt and its parser."""
