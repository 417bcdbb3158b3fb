"""Lab Notes: a static blog generator whose posts run their own code."""
