"""The component registry: kind -> name -> spec, with entry-point discovery."""
