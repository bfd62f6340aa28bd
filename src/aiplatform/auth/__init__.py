"""Who is calling: users, tenants, API keys and tokens, and the identity a request runs as."""
