"""Loopback mocks of the model APIs the agent CLIs speak (the OpenAI Responses API for codex,
the Gemini API for gemini): the tests drive the real CLIs offline against them, and
``shoemaker demo --agent codex|gemini`` runs against them when no credentials are set, its
replies then directed by the rehearsal blocks of the prompt (``mocks/director.py``)."""
