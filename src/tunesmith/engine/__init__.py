"""The tuning engine: base models, the recipe, prompt formatting. No HTTP, DB or queue here."""
