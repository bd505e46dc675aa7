"""Optional LLM providers of invoice drafting (issue 19, item 6; docs/assistants.md, "LLM providers"): an
OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, llama.cpp) or Anthropic, through pydantic-ai
(``pip install stalela[ai]``). The model only reads: its extraction goes through the rule parser's builders and
checks, its confidence is its agreement with the rule parser, and on any failure the rule parser answers."""
from stalela.assistants.providers.llm import (Answer, LlmConfig, Reading, answer, configured, read, read_request, require,
                                              warm)

__all__ = ["Answer", "LlmConfig", "Reading", "answer", "configured", "read", "read_request", "require", "warm"]
