// Reference server for the realtime benchmark: Node socket.io (websocket transport only) with
// the same events as examples/socketio_conformance, so one load generator drives both.
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2] || 3001);
const httpServer = createServer();
const io = new Server(httpServer, { transports: ["websocket"], serveClient: false });

io.on("connection", (socket) => {
  socket.emit("auth", socket.handshake.auth);
  socket.on("message", (...args) => socket.emit("message-back", ...args));
  socket.on("message-with-ack", (...args) => {
    const ack = args.pop();
    if (typeof ack === "function") ack(...args);
  });
  socket.on("join", (data, ack) => {
    socket.join(data.room);
    if (typeof ack === "function") ack({ ok: true, rooms: socket.rooms.size });
  });
  socket.on("to-room", (data, ack) => {
    socket.to(data.room).emit("room-message", data.payload);
    if (typeof ack === "function") ack({ ok: true });
  });
});

httpServer.listen(port, "127.0.0.1", () => console.error(`node socket.io listening on ${port}`));
