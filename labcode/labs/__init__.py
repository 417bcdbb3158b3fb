"""The experiments the blog's posts run: one module per post, named for its topic.

Each lab entry point (a function a post's ```lab block names, `labcode.labs.layernorm:eps_demo`)
is small and deterministic: the build seeds it from its own name, so moving it to another
module does not reseed it. Labs import chapters (`labcode.attention`, `labcode.model`...) and
`labs.figures`, the house style of their figures; no chapter imports a lab, so editing a lab
reruns only the labs of its own module.
"""
