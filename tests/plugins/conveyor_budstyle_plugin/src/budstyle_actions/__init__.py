"""Actions in BudPipeline's style."""
