"""A FakeLLM (the real local OpenAI-compatible server) whose answers depend on the prompt, so the
synthesis tests can run many concurrent requests without relying on their order. Imported by the
other test_synth_* files; its own test checks the routing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from llm_fakes import FakeLLM

from datamill.llm import LLMClient, LLMConfig


class _Router(list):
    """Stands in for FakeLLM.script: every request is answered by ``route(prompt text)``. The server
    appends the request before it pops its behaviour (under one lock), so the last request is this one."""

    def __init__(self, fake: FakeLLM, route: Callable[[str], str]):
        super().__init__()
        self.fake, self.route = fake, route

    def __bool__(self) -> bool:
        return True

    def pop(self, index: int = 0):  # noqa: ARG002 - the list API
        body = self.fake.requests[-1]["body"]
        prompt = "\n".join(m.get("content", "") for m in body.get("messages", [])) or body.get("prompt", "")
        answer = self.route(prompt)
        return answer if isinstance(answer, tuple) else ("text", answer)  # a tuple: a FakeLLM behaviour


def routed(route: Callable[[str], str | tuple]) -> FakeLLM:
    fake = FakeLLM()
    fake.script = _Router(fake, route)
    return fake


def llm_config(fake: FakeLLM, **kw) -> LLMConfig:
    return LLMConfig(backend="openai", base_url=fake.base_url, model="fake", cache=False, max_retries=0, **kw)


def prompts_sent(fake: FakeLLM) -> list[str]:
    return ["\n".join(m["content"] for m in r["body"]["messages"]) for r in fake.requests]


def test_router_answers_by_prompt():
    with routed(lambda p: "pong" if "ping" in p else "?") as fake:

        async def go():
            async with LLMClient(llm_config(fake)) as c:
                return await c.chat_many(["ping 1", "other", "ping 2"])

        answers = [a.text for a in asyncio.run(go())]
    assert answers == ["pong", "?", "pong"]
    assert len(prompts_sent(fake)) == 3
