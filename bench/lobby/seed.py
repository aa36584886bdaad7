#!/usr/bin/env python3
"""Fills a running server with live rooms for bench/lobby/run.sh: ROOMS rooms by 50 guests,
mixed languages, levels, topics and sizes, some with more people seated.

    python3 bench/lobby/seed.py http://127.0.0.1:3301 200
"""
import json
import sys
import urllib.request

base, rooms = sys.argv[1], int(sys.argv[2])


def call(method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req) as answer:
        return json.loads(answer.read() or b"null")


guests = [call("POST", "/api/auth/guest", body={"displayName": f"Người {i}"})["token"] for i in range(50)]
titles = ["Tiếng Việt cho người mới", "TIẾNG ANH giao tiếp", "Café Đà Lạt", "Business English", "Luyện nói"]
topics = ["Đời sống", "Công việc", "du lịch", "", "Âm nhạc"]
levels = ["any", "beginner", "intermediate", "advanced"]
for i in range(rooms):
    room = call("POST", "/api/rooms", guests[i % 50], {
        "title": f"{titles[i % 5]} {i}",
        "topic": topics[(i // 5) % 5],
        "language": ["vi", "en"][i % 2],
        "level": levels[(i // 2) % 4],
        "maxParticipants": 2 + i % 5,
        "micRequired": i % 3 == 0,
    })
    for k in range(min(i % 3, 1 + i % 5)):
        call("POST", f"/api/rooms/{room['id']}/join", guests[(i + 7 + k) % 50])
print(f"seeded {rooms} rooms")
