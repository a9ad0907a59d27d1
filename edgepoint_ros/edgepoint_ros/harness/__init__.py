"""The process and probe harness: the node executables started as real
processes the way `ros2 launch` would (processes.py), and an in-process node
that publishes to them and records what they publish (probe.py). Used by the
demo and soak commands and by the tests; the nodes never import it (it is a
layer above ros/, setup.cfg)."""
