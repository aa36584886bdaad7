DROP TABLE room_chat_messages;
DROP TABLE room_participants;
DROP TABLE rooms;
DROP TABLE users;
