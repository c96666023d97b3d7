"""A small AMQP client for the rabbitmq scenario's tests, run with a Python that has pika.

Reads one JSON request on stdin: {"op", "host", "user", "password", "vhost", "queue", ...};
prints one JSON result. Operations: declare (a durable queue, no queue type asked for), publish
(with publisher confirms), get (consume up to `count` messages), login."""

import json
import sys

import pika
import pika.exceptions


def connect(req):
    params = pika.ConnectionParameters(
        host=req["host"],
        port=req.get("port", 5672),
        virtual_host=req.get("vhost", "/"),
        credentials=pika.PlainCredentials(req["user"], req["password"]),
        connection_attempts=1,
        socket_timeout=10,
        blocked_connection_timeout=10,
    )
    return pika.BlockingConnection(params)


def main():
    req = json.load(sys.stdin)
    op = req["op"]
    try:
        conn = connect(req)
    except pika.exceptions.ProbableAuthenticationError:
        print(json.dumps({"ok": False, "error": "authentication"}))
        return
    except pika.exceptions.ProbableAccessDeniedError:
        print(json.dumps({"ok": False, "error": "access"}))
        return
    except pika.exceptions.AMQPError as exc:
        print(json.dumps({"ok": False, "error": type(exc).__name__}))
        return
    result = {"ok": True}
    try:
        ch = conn.channel()
        if op == "declare":
            ch.queue_declare(queue=req["queue"], durable=True)
        elif op == "publish":
            ch.confirm_delivery()
            for body in req["bodies"]:
                ch.basic_publish(
                    exchange="",
                    routing_key=req["queue"],
                    body=body.encode(),
                    properties=pika.BasicProperties(delivery_mode=2),
                    mandatory=True,
                )
        elif op == "get":
            bodies = []
            for _index in range(req.get("count", 1)):
                method, _props, body = ch.basic_get(queue=req["queue"], auto_ack=True)
                if method is None:
                    break
                bodies.append(body.decode())
            result["bodies"] = bodies
        conn.close()
    except pika.exceptions.AMQPError as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
