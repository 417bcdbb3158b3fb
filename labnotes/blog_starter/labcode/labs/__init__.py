"""The experiments the posts run, one module per post; they import chapters, never the reverse."""
