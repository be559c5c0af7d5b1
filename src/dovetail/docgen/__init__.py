"""Generated documentation: component reference pages and the flow JSON Schema."""
