"""Completion and resource templates through the hub, namespaced on /mcp like resources and prompts."""

from __future__ import annotations

from collections.abc import Iterator

import mcp_types as types
import pytest

from servers import services
from tests.conftest import hub_env, run_web
from tests.gateway.conftest import Hub, register_fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def hub(transactional_db: None) -> Iterator[Hub]:
    register_fixture("legacy", "--legacy-only")
    _token, secret = services.create_token("tests")
    with run_web(hub_env()) as server:
        yield Hub(server.url, secret, server)


@pytest.mark.parametrize("path,prompt", [("/mcp", "legacy__greet"), ("/mcp/legacy/", "greet")])
async def test_prompt_argument_completion(hub: Hub, path: str, prompt: str) -> None:
    async with hub.client(path, mode="legacy") as client:
        assert client.server_capabilities.completions is not None
        result = await client.complete(types.PromptReference(name=prompt), {"name": "name", "value": "A"})
    assert result.completion.values == ["Ada", "Alan"]


@pytest.mark.parametrize(
    "path,template", [("/mcp", "mcphub+legacy:fixture://items/{id}"), ("/mcp/legacy/", "fixture://items/{id}")]
)
async def test_templates_are_listed_completed_and_read(hub: Hub, path: str, template: str) -> None:
    async with hub.client(path, mode="legacy") as client:
        listed = await client.list_resource_templates()
        assert [t.uri_template for t in listed.resource_templates] == [template]
        result = await client.complete(types.ResourceTemplateReference(uri=template), {"name": "id", "value": "2"})
        assert result.completion.values == ["2"]
        read = await client.read_resource(template.replace("{id}", "7"))
    content = read.contents[0]
    assert isinstance(content, types.TextResourceContents) and content.text == "item 7"


async def test_completion_for_an_unknown_prompt_is_invalid_params(hub: Hub) -> None:
    async with hub.client("/mcp", mode="legacy") as client:
        with pytest.raises(Exception, match="Unknown prompt"):
            await client.complete(types.PromptReference(name="legacy__nope"), {"name": "x", "value": ""})
