"""Task functions the corpus Pipelinefiles name: `validate` imports them, never calls them."""
