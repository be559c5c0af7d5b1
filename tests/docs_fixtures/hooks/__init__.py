"""Python steps named by the docs examples."""
