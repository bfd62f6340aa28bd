"""The HTTP server: routes mounted from the engines' operation tables."""
