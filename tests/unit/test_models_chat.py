"""Chat backends: scripted fake, local model, and an OpenAI-compatible client against a stub server."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from superalign.models import ChatError, ChatModel, LocalChatModel, OpenAIChatModel, ScriptedChatModel, load


class _Handler(BaseHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        model = body["model"]
        if model == "slow":
            time.sleep(0.5)
        if model == "broken":
            self._send(500, b'{"error": "boom"}')
        elif model == "garbage":
            self._send(200, b"not json at all")
        else:
            last = body["messages"][-1]["content"]
            reply = {"choices": [{"message": {"role": "assistant", "content": f"echo: {last}"}}]}
            self._send(200, json.dumps(reply).encode())

    def _send(self, status, payload):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_openai_client_round_trip(server):
    _Handler.requests.clear()
    client = OpenAIChatModel(server, "m1", api_key="secret", timeout=5)
    reply = client.chat([{"role": "user", "content": "hello"}], max_new_tokens=7, temperature=0.5)
    assert reply == "echo: hello"
    sent = _Handler.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["max_tokens"] == 7 and sent["body"]["temperature"] == 0.5
    assert sent["auth"] == "Bearer secret"
    assert isinstance(client, ChatModel)


def test_openai_client_accepts_base_url_with_v1(server):
    _Handler.requests.clear()
    OpenAIChatModel(server + "/v1/", "m1").chat([{"role": "user", "content": "x"}])
    assert _Handler.requests[-1]["path"] == "/v1/chat/completions"


def test_openai_client_http_error(server):
    with pytest.raises(ChatError, match="HTTP 500"):
        OpenAIChatModel(server, "broken").chat([{"role": "user", "content": "x"}])


def test_openai_client_malformed_reply(server):
    with pytest.raises(ChatError, match="malformed"):
        OpenAIChatModel(server, "garbage").chat([{"role": "user", "content": "x"}])


def test_openai_client_timeout(server):
    with pytest.raises(ChatError, match="timed out"):
        OpenAIChatModel(server, "slow", timeout=0.1).chat([{"role": "user", "content": "x"}])


def test_openai_client_unreachable():
    with pytest.raises(ChatError, match="could not reach"):
        OpenAIChatModel("http://127.0.0.1:9", "m", timeout=0.5).chat([{"role": "user", "content": "x"}])


def test_scripted_list_records_calls():
    fake = ScriptedChatModel(["first", "second"])
    messages = [{"role": "user", "content": "q"}]
    assert fake.chat(messages) == "first"
    messages[0]["content"] = "changed"  # the recorded call is a copy
    assert fake.chat(messages) == "second"
    assert fake.calls[0][0]["content"] == "q" and fake.calls[1][0]["content"] == "changed"
    with pytest.raises(ChatError, match="only 2 replies"):
        fake.chat(messages)


def test_scripted_function():
    fake = ScriptedChatModel(lambda messages: messages[-1]["content"].upper())
    assert fake.chat([{"role": "user", "content": "abc"}]) == "ABC"
    assert len(fake.calls) == 1 and isinstance(fake, ChatModel)


def test_local_chat_model_greedy_is_deterministic():
    chat = LocalChatModel(load("tiny-llama"))
    messages = [{"role": "user", "content": "hi"}]
    a = chat.chat(messages, max_new_tokens=5)
    b = chat.chat(messages, max_new_tokens=5)
    assert a == b and len(a) <= 5
    assert chat.name == "tiny-llama" and isinstance(chat, ChatModel)


def test_local_chat_model_rejects_encoder():
    with pytest.raises(ValueError, match="encoder"):
        LocalChatModel(load("tiny-encoder"))
