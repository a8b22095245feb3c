"""The graph core: state, context, prompts, memory, the three nodes and the graph."""
