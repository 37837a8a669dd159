"""`docvec mcp`: docvec's search for AI agents over the Model Context Protocol (the official SDK)."""
