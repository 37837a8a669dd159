"""Retrievers for LLM application frameworks (LangChain, LlamaIndex): docvec's hits as their own types."""
