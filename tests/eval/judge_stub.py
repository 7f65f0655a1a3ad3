"""A deterministic OpenAI-compatible judge on a real HTTP port, standing in for a judge model.

No judge model runs on the test machine, so this stub answers /v1/chat/completions the way a
judge would, but by rule: it reads the reference and candidate out of slmkit's judge prompt and
scores their word overlap on 1-5. Candidates containing a marker misbehave on purpose, to
exercise unscorable counting: GARBAGE -> prose, FENCED -> JSON in a code fence (scorable),
OFFSCALE -> score 9, DROP -> the connection closes without an answer.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def overlap_score(reference: str, candidate: str) -> int:
    ref, cand = set(re.findall(r"\w+", reference.lower())), set(re.findall(r"\w+", candidate.lower()))
    jaccard = len(ref & cand) / len(ref | cand) if ref | cand else 1.0
    return 1 + round(4 * jaccard)


class StubJudge:
    def __init__(self, *, structured: bool = True) -> None:
        self.structured = structured  # False: refuses response_format with HTTP 400, like many servers
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"body": body, "authorization": self.headers.get("Authorization")})
                if "response_format" in body and not stub.structured:
                    return self._send(400, {"error": {"message": "response_format is not supported", "type": "x"}})
                prompt = body["messages"][-1]["content"]
                reference = prompt.split("Reference answer:\n", 1)[1].split("\n\nCandidate answer:\n", 1)[0]
                candidate = prompt.split("\n\nCandidate answer:\n", 1)[1]
                if "DROP" in candidate:
                    self.close_connection = True
                    self.connection.close()
                    return None
                score = overlap_score(reference, candidate)
                verdict = json.dumps({"score": score, "reason": f"word overlap scores {score}"})
                if "GARBAGE" in candidate:
                    verdict = "The candidate looks fine to me."
                elif "OFFSCALE" in candidate:
                    verdict = json.dumps({"score": 9, "reason": "beyond excellent"})
                elif "FENCED" in candidate:
                    verdict = f"```json\n{verdict}\n```"
                return self._send(200, _completion(body["model"], verdict))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> StubJudge:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _completion(model: str, content: str) -> dict[str, Any]:
    return {
        "id": "judge-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
