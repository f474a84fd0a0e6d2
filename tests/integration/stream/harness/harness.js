// Test harness for the streaming gateway: dial a guest (HTTP offer or /signal), count decoded
// frames (requestVideoFrameCallback), read pixels and sound levels, send input on the wire format.
"use strict";
const streams = {};

async function gathered(pc) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
  });
}

function attach(key, pc, channel) {
  const video = document.createElement("video");
  video.muted = true;  // WebAudio hears a remote track only while a media element plays it
  video.autoplay = true;
  video.playsInline = true;
  document.getElementById("streams").appendChild(video);
  const stream = new MediaStream();
  const s = { pc, channel, video, stream, frames: 0, lastFrameAt: 0, state: null, errors: [] };
  pc.ontrack = (event) => {
    event.receiver.jitterBufferTarget = 0;  // play each frame as soon as it is decoded
    stream.addTrack(event.track);
    video.srcObject = stream;
  };
  channel.onmessage = (event) => { s.state = JSON.parse(event.data); };
  const tick = () => { s.frames++; s.lastFrameAt = performance.now(); video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
  streams[key] = s;
  return s;
}

function newPeer(options) {
  const pc = new RTCPeerConnection({ iceServers: options.iceServers || [], iceTransportPolicy: options.relay ? "relay" : "all" });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  return { pc, channel: pc.createDataChannel("input") };
}

window.harness = {
  // Dial through POST /stream/<id>/offer; resolves to the answer's "player".
  async connect(key, id, options = {}) {
    const { pc, channel } = newPeer(options);
    attach(key, pc, channel);
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const headers = { "Content-Type": "application/json" };
    if (options.token) headers.Authorization = `Bearer ${options.token}`;
    const reply = await fetch(`/stream/${id}/offer`, { method: "POST", headers, body: JSON.stringify(pc.localDescription) });
    const answer = await reply.json();
    if (!reply.ok) throw new Error(answer.error);
    await pc.setRemoteDescription(answer);
    return answer.player;
  },

  // Dial the way today's clients do: /signal, register, offer with trickled candidates.
  async connectSignal(key, id, options = {}) {
    const ws = new WebSocket(`${location.origin.replace("http", "ws")}/signal`);
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    const { pc, channel } = newPeer(options);
    const s = attach(key, pc, channel);
    s.ws = ws;
    const registered = new Promise((resolve) => {
      ws.onmessage = async (event) => {
        const message = JSON.parse(event.data);
        if (message.type === "registered") resolve(message.id);
        else if (message.type === "signal" && message.data.type === "answer") await pc.setRemoteDescription(message.data);
        else if (message.type === "__pong") s.pong = message.ts;
        else if (message.type === "error") s.errors.push(message.error);
      };
    });
    ws.send(JSON.stringify({ type: "register", token: options.token }));
    s.registeredId = await registered;
    pc.onicecandidate = (event) => {
      if (event.candidate) ws.send(JSON.stringify({ type: "signal", target: id, data: event.candidate.toJSON() }));
    };
    await pc.setLocalDescription(await pc.createOffer());
    ws.send(JSON.stringify({ type: "signal", target: id, data: pc.localDescription }));
    ws.send(JSON.stringify({ type: "__ping", ts: 42 }));
    return s.registeredId;
  },

  info(key) {
    const s = streams[key];
    return { frames: s.frames, sinceFrame: performance.now() - s.lastFrameAt, state: s.state,
             connection: s.pc.connectionState, width: s.video.videoWidth, height: s.video.videoHeight,
             pong: s.pong, errors: s.errors };
  },

  // The picture now shown, as a PNG data URL.
  frame(key) {
    const { video } = streams[key];
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    return canvas.toDataURL("image/png");
  },

  async inbound(key) {
    const report = await streams[key].pc.getStats();
    const out = {};
    report.forEach((r) => {
      if (r.type === "inbound-rtp") out[r.kind] = { framesDecoded: r.framesDecoded, totalSamplesReceived: r.totalSamplesReceived, audioLevel: r.audioLevel, freezeCount: r.freezeCount, bytesReceived: r.bytesReceived };
      if (r.type === "candidate-pair" && r.nominated) out.pair = r.localCandidateId;
      if (r.type === "local-candidate") (out.local = out.local || {})[r.id] = r.candidateType;
    });
    return out;
  },

  // RMS of the stream's sound at an AnalyserNode, over `ms` milliseconds.
  async level(key, ms = 500) {
    const s = streams[key];
    if (!s.audio) {
      const context = new AudioContext();
      await context.resume();
      const analyser = context.createAnalyser();
      analyser.fftSize = 2048;
      context.createMediaStreamSource(s.stream).connect(analyser);
      s.audio = { context, analyser };
    }
    const data = new Float32Array(s.audio.analyser.fftSize);
    let peak = 0;
    const until = performance.now() + ms;
    while (performance.now() < until) {
      s.audio.analyser.getFloatTimeDomainData(data);
      peak = Math.max(peak, Math.sqrt(data.reduce((sum, v) => sum + v * v, 0) / data.length));
      await new Promise((r) => setTimeout(r, 20));
    }
    return peak;
  },

  // Input on the data channel's wire format (docs/streaming.md): big-endian op, fields.
  key(key, keysym, down) {
    const b = new DataView(new ArrayBuffer(6));
    b.setUint8(0, 1); b.setUint8(1, down ? 1 : 0); b.setUint32(2, keysym);
    streams[key].channel.send(b.buffer);
  },
  pointer(key, buttons, x, y) {  // x, y in 0..1 of the picture
    const b = new DataView(new ArrayBuffer(6));
    b.setUint8(0, 2); b.setUint8(1, buttons);
    b.setUint16(2, Math.round(x * 65535)); b.setUint16(4, Math.round(y * 65535));
    streams[key].channel.send(b.buffer);
  },
  channelOpen(key) { return streams[key].channel.readyState === "open"; },
  stream(key) { return streams[key]; },
  close(key) { streams[key].pc.close(); if (streams[key].ws) streams[key].ws.close(); },
};
