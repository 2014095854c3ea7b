"""Optional CPU speed patches of transformers models' forwards (each one `apply(model) -> bool`)."""
