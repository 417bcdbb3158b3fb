"""This blog's code: chapters (one module per idea) here, the experiments posts run in labs/."""
