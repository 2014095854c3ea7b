"""Fine-tuning: recipes, data loading, the Trainer core and one module per task family."""
