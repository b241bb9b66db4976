// MotionMillion Studio: type a prompt, get a motion from POST /v1/generate/stream, play it on a mannequin.
// Joints arrive as (frames, 22, 3) metres, Y up, SMPL order; the skeleton (parents) comes from /v1/model.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ the mannequin
// Capsule radius (metres) of the bone that ends at each joint, by joint name.
const BONE_RADIUS = {
  left_hip: 0.075, right_hip: 0.075, spine1: 0.115, spine2: 0.12, spine3: 0.125,
  left_knee: 0.068, right_knee: 0.068, left_ankle: 0.05, right_ankle: 0.05,
  left_foot: 0.042, right_foot: 0.042, neck: 0.05, head: 0.045,
  left_collar: 0.06, right_collar: 0.06, left_shoulder: 0.06, right_shoulder: 0.06,
  left_elbow: 0.046, right_elbow: 0.046, left_wrist: 0.038, right_wrist: 0.038,
};
const SKIN = new THREE.MeshStandardMaterial({ color: 0xd8c3a5, roughness: 0.55, metalness: 0.0 });
const SKIN_LEFT = new THREE.MeshStandardMaterial({ color: 0xc9b08c, roughness: 0.55, metalness: 0.0 });
const JOINT = new THREE.MeshStandardMaterial({ color: 0xb39672, roughness: 0.5 });
const FACE = new THREE.MeshStandardMaterial({ color: 0x8f7455, roughness: 0.5 });

class Mannequin {
  constructor(scene, names, parents) {
    this.names = names;
    this.parents = parents;
    this.index = Object.fromEntries(names.map((n, i) => [n, i]));
    this.group = new THREE.Group();
    this.bones = [];
    const unitCapsule = (radius) => new THREE.CapsuleGeometry(radius, 1, 6, 16);
    parents.forEach((parent, child) => {
      if (parent < 0) return;
      const radius = BONE_RADIUS[names[child]] ?? 0.04;
      const material = names[child].startsWith("left_") ? SKIN_LEFT : SKIN;
      const mesh = new THREE.Mesh(unitCapsule(radius), material);
      mesh.castShadow = true;
      mesh.userData = { parent, child, radius };
      this.bones.push(mesh);
      this.group.add(mesh);
    });
    // Across the chest and the hips, so the torso reads as a body rather than a stick.
    this.spans = [["left_shoulder", "right_shoulder", 0.075], ["left_hip", "right_hip", 0.085]].map(([a, b, radius]) => {
      const mesh = new THREE.Mesh(unitCapsule(radius), SKIN);
      mesh.castShadow = true;
      mesh.userData = { parent: this.index[a], child: this.index[b], radius };
      this.group.add(mesh);
      return mesh;
    });
    this.knuckles = [];  // small joint balls where limbs bend, as on a wooden mannequin
    for (const name of ["left_knee", "right_knee", "left_elbow", "right_elbow", "left_shoulder", "right_shoulder"]) {
      const ball = new THREE.Mesh(new THREE.SphereGeometry(BONE_RADIUS[name] * 1.02, 16, 12), JOINT);
      ball.castShadow = true;
      ball.userData.joint = this.index[name];
      this.knuckles.push(ball);
      this.group.add(ball);
    }
    this.hands = ["left_wrist", "right_wrist"].map((name) => {
      const hand = new THREE.Mesh(new THREE.SphereGeometry(0.05, 16, 12), SKIN);
      hand.scale.set(1, 1.35, 0.7);
      hand.castShadow = true;
      hand.userData.joint = this.index[name];
      this.group.add(hand);
      return hand;
    });
    this.head = new THREE.Mesh(new THREE.SphereGeometry(0.105, 24, 18), SKIN);
    this.head.scale.set(0.92, 1.12, 1.0);
    this.head.castShadow = true;
    this.nose = new THREE.Mesh(new THREE.SphereGeometry(0.024, 12, 8), FACE);  // shows where the face is
    this.group.add(this.head, this.nose);
    scene.add(this.group);
    this._a = new THREE.Vector3();
    this._b = new THREE.Vector3();
    this._dir = new THREE.Vector3();
    this._up = new THREE.Vector3(0, 1, 0);
  }

  // pose: Float32Array of 22 * 3 (one frame)
  setPose(pose) {
    const a = this._a, b = this._b, dir = this._dir;
    const at = (j, v) => v.set(pose[3 * j], pose[3 * j + 1], pose[3 * j + 2]);
    for (const mesh of [...this.bones, ...this.spans]) {
      const { parent, child } = mesh.userData;
      at(parent, a); at(child, b);
      dir.subVectors(b, a);
      const length = Math.max(dir.length(), 1e-4);
      mesh.position.addVectors(a, b).multiplyScalar(0.5);
      mesh.scale.set(1, length, 1);  // the unit capsule's cylinder is 1 m; caps keep their radius
      mesh.quaternion.setFromUnitVectors(this._up, dir.divideScalar(length));
    }
    for (const ball of this.knuckles) at(ball.userData.joint, ball.position);
    const i = this.index;
    for (const hand of this.hands) {
      const wrist = hand.userData.joint, elbow = this.parents[wrist];
      at(wrist, a); at(elbow, b);
      dir.subVectors(a, b).normalize();
      hand.position.copy(a).addScaledVector(dir, 0.06);
      hand.quaternion.setFromUnitVectors(this._up, dir);
    }
    // Head: above the head joint, along the neck; the nose points where the chest faces.
    at(i.head, a); at(i.neck, b);
    dir.subVectors(a, b).normalize();
    this.head.position.copy(a).addScaledVector(dir, 0.05);
    this.head.quaternion.setFromUnitVectors(this._up, dir);
    const across = new THREE.Vector3().subVectors(at(i.left_shoulder, new THREE.Vector3()), at(i.right_shoulder, b));
    const forward = across.cross(this._up).normalize();
    this.nose.position.copy(this.head.position).addScaledVector(forward, 0.1).addScaledVector(dir, -0.01);
  }
}

// ------------------------------------------------------------------ scene
const viewport = $("viewport");
const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
renderer.shadowMap.enabled = true;
renderer.shadowMap.type = THREE.PCFShadowMap;
viewport.appendChild(renderer.domElement);

const scene = new THREE.Scene();
scene.background = new THREE.Color(0xeef1f5);
scene.fog = new THREE.Fog(0xeef1f5, 9, 22);

const TARGET_HEIGHT = 0.75;  // metres: the camera looks at the belly, so feet and shadow stay above the transport bar
const camera = new THREE.PerspectiveCamera(40, 1, 0.05, 100);
camera.position.set(2.3, 1.6, 3.2);
const controls = new OrbitControls(camera, renderer.domElement);
controls.target.set(0, TARGET_HEIGHT, 0);
controls.enableDamping = true;
controls.maxPolarAngle = Math.PI * 0.495;  // stay above the floor
controls.minDistance = 1;
controls.maxDistance = 15;

scene.add(new THREE.HemisphereLight(0xffffff, 0xb8c0cc, 1.6));
const sun = new THREE.DirectionalLight(0xffffff, 2.2);
sun.position.set(3, 6, 2.5);
sun.castShadow = true;
sun.shadow.mapSize.set(2048, 2048);
Object.assign(sun.shadow.camera, { left: -3, right: 3, top: 3, bottom: -3, near: 0.5, far: 20 });
sun.shadow.radius = 4;
scene.add(sun, sun.target);

// The floor: a painted grid texture (1 m squares, 25 cm lines) rather than GL lines, which some
// software renderers draw only in the distance.
function gridTexture() {
  const size = 256, canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const g = canvas.getContext("2d");
  g.fillStyle = "#f5f7fa";
  g.fillRect(0, 0, size, size);
  g.strokeStyle = "#dde3ec";
  g.lineWidth = 2;
  for (let k = 1; k < 4; k++) {
    g.beginPath(); g.moveTo(k * size / 4, 0); g.lineTo(k * size / 4, size); g.stroke();
    g.beginPath(); g.moveTo(0, k * size / 4); g.lineTo(size, k * size / 4); g.stroke();
  }
  g.strokeStyle = "#b7c1cf";
  g.lineWidth = 4;
  g.strokeRect(0, 0, size, size);
  const texture = new THREE.CanvasTexture(canvas);
  texture.wrapS = texture.wrapT = THREE.RepeatWrapping;
  texture.repeat.set(60, 60);
  texture.anisotropy = renderer.capabilities.getMaxAnisotropy();
  texture.colorSpace = THREE.SRGBColorSpace;
  return texture;
}
const floor = new THREE.Mesh(new THREE.PlaneGeometry(60, 60), new THREE.MeshStandardMaterial({ map: gridTexture(), roughness: 1 }));
floor.rotation.x = -Math.PI / 2;
floor.receiveShadow = true;
scene.add(floor);

const trailMaterial = new THREE.LineBasicMaterial({ color: 0x2f6fed, transparent: true, opacity: 0.55 });
let trail = null;

function resize() {
  const { clientWidth: w, clientHeight: h } = viewport;
  renderer.setSize(w, h, false);
  renderer.domElement.style.width = `${w}px`;
  renderer.domElement.style.height = `${h}px`;
  camera.aspect = w / Math.max(h, 1);
  camera.updateProjectionMatrix();
}
window.addEventListener("resize", resize);

// ------------------------------------------------------------------ state
const state = {
  model: null, mannequin: null,
  motion: null,          // {id, prompt, seed, fps, frames, joints: Float32Array, floor, files, complete, segments}
  history: [],
  segments: [],          // the timeline being composed: [{prompt, seconds}]
  time: 0, playing: false, frame: 0,
};
window.studio = state;   // for the browser test and the curious

function flatten(joints) {
  const out = new Float32Array(joints.length * 66);
  let k = 0;
  for (const frame of joints) for (const joint of frame) { out[k++] = joint[0]; out[k++] = joint[1]; out[k++] = joint[2]; }
  return out;
}

function lowestPoint(flat) {
  let low = Infinity;
  for (let k = 1; k < flat.length; k += 3) low = Math.min(low, flat[k]);
  return low;
}

// The pose at time t (seconds), linearly interpolated between frames and standing on the floor.
const pose = new Float32Array(66);
function poseAt(motion, t) {
  const f = Math.min(t * motion.fps, motion.frames - 1);
  const f0 = Math.floor(f), f1 = Math.min(f0 + 1, motion.frames - 1), w = f - f0;
  const a = f0 * 66, b = f1 * 66;
  for (let k = 0; k < 66; k++) pose[k] = motion.joints[a + k] * (1 - w) + motion.joints[b + k] * w;
  for (let k = 1; k < 66; k += 3) pose[k] -= motion.floor;
  return pose;
}

// Frames arrive in chunks while the server generates: the motion grows and plays as it grows.
function appendFrames(motion, joints) {
  const flat = flatten(joints);
  const grown = new Float32Array(motion.joints.length + flat.length);
  grown.set(motion.joints);
  grown.set(flat, motion.joints.length);
  if (motion.frames === 0) motion.floor = lowestPoint(flat);  // fixed once, so the body never jumps
  motion.joints = grown;
  motion.frames = grown.length / 66;
  if (motion === state.motion) refresh(motion);
}

function refresh(motion) {
  $("scrubber").max = Math.max(motion.frames - 1, 0);
  if (trail) scene.remove(trail);
  const points = [];
  for (let f = 0; f < motion.frames; f++) points.push(new THREE.Vector3(motion.joints[f * 66], 0.004, motion.joints[f * 66 + 2]));
  trail = new THREE.Line(new THREE.BufferGeometry().setFromPoints(points), trailMaterial);
  scene.add(trail);
  renderSegmentBar(motion);
}

// Before any motion: the mannequin standing in the model's rest pose, feet on the floor.
function standStill(restPose) {
  const still = flatten([restPose]);
  const floor = lowestPoint(still);
  for (let k = 1; k < still.length; k += 3) still[k] -= floor;
  state.mannequin.setPose(still);
}

function show(motion) {
  state.motion = motion;
  state.time = 0;
  state.playing = true;
  $("hint").hidden = true;
  $("play").disabled = $("scrubber").disabled = false;
  refresh(motion);
  const start = poseAt(motion, 0);
  const shift = new THREE.Vector3(start[0], TARGET_HEIGHT, start[2]).sub(controls.target);
  controls.target.add(shift);
  camera.position.add(shift);
  if (motion.complete) showDownloads(motion);
  else $("downloads").hidden = true;
  renderHistory();
}

// A timeline's segments as coloured spans over the scrubber.
function renderSegmentBar(motion) {
  const bar = $("segment-bar");
  bar.replaceChildren();
  const segments = motion.segments ?? [];
  bar.hidden = segments.length < 2;
  const total = segments.reduce((sum, s) => sum + (s.end_frame !== undefined ? s.end_frame - s.start_frame : s.seconds * motion.fps), 0);
  segments.forEach((segment, i) => {
    const span = document.createElement("span");
    const frames = segment.end_frame !== undefined ? segment.end_frame - segment.start_frame : segment.seconds * motion.fps;
    span.style.flexGrow = String(frames / total);
    span.textContent = segment.prompt;
    span.title = `${i + 1}. ${segment.prompt} (${(frames / motion.fps).toFixed(1)} s)`;
    bar.appendChild(span);
  });
}

function showDownloads(motion) {
  const links = $("download-links");
  links.replaceChildren();
  const labels = { bvh: "BVH", npy: "NPY", mp4: "MP4", glb: "glTF", fbx: "FBX", json: "JSON" };
  for (const [fmt, label] of Object.entries(labels)) {
    if (!motion.files[fmt]) continue;
    const a = document.createElement("a");
    a.href = motion.files[fmt];
    a.download = `${slug(motion.prompt)}_s${motion.seed}.${fmt}`;
    a.textContent = label;
    a.dataset.format = fmt;
    if (fmt === "mp4") a.title = "rendered on first download (a few seconds)";
    if (fmt === "fbx") a.title = "written by Blender on first download (a few seconds)";
    links.appendChild(a);
  }
  $("downloads").hidden = false;
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "").slice(0, 40) || "motion";
}

function renderHistory() {
  const list = $("history");
  list.replaceChildren();
  for (const motion of state.history) {
    const li = document.createElement("li");
    li.className = motion === state.motion ? "active" : "";
    const title = document.createElement("div");
    title.textContent = motion.prompt;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${(motion.frames / motion.fps).toFixed(1)} s · seed ${motion.seed} · ${motion.took.toFixed(2)} s to make`;
    li.append(title, meta);
    li.addEventListener("click", () => show(motion));
    list.appendChild(li);
  }
  $("history-empty").hidden = state.history.length > 0;
  $("history-count").textContent = state.history.length ? `(${state.history.length})` : "";
}

// ------------------------------------------------------------------ the timeline being composed
function renderTimeline() {
  const list = $("segments");
  list.replaceChildren();
  state.segments.forEach((segment, i) => {
    const li = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = segment.prompt;
    const seconds = document.createElement("small");
    seconds.textContent = `${segment.seconds} s`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.title = "remove";
    remove.innerHTML = "&times;";
    remove.addEventListener("click", () => { state.segments.splice(i, 1); renderTimeline(); });
    li.append(text, seconds, remove);
    list.appendChild(li);
  });
  const total = state.segments.reduce((sum, s) => sum + s.seconds, 0);
  $("clear-segments").hidden = state.segments.length === 0;
  $("timeline-hint").hidden = state.segments.length > 0;
  $("generate").textContent = state.segments.length
    ? `Generate timeline · ${total} s` : "Generate";
}

$("add-segment").addEventListener("click", () => {
  const prompt = $("prompt").value.trim() || $("prompt").placeholder;  // an empty box means the example, as for Generate
  state.segments.push({ prompt, seconds: Number($("seconds").value) || 2 });
  $("prompt").value = "";
  $("prompt").focus();
  setStatus("");
  renderTimeline();
});
$("clear-segments").addEventListener("click", () => { state.segments = []; renderTimeline(); });

// ------------------------------------------------------------------ talking to the server
function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// POST /v1/generate/stream and read its Server-Sent Events: start, chunk..., done | error.
// onChunk(start, joints) is called for every chunk; the finished motion's description is returned.
async function generate(body, onStart, onChunk) {
  const response = await fetch("/v1/generate/stream", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) {
    const error = await response.json().catch(() => ({ error: response.statusText }));
    throw new Error(error.error || `HTTP ${response.status}`);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = JSON.parse(block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n"));
      if (event === "start") onStart(data);
      else if (event === "chunk") onChunk(data.start, data.joints);
      else if (event === "error") throw new Error(data.error);
      else if (event === "done") return data;
    }
  }
  throw new Error("the server closed the stream early");
}

$("generate-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  let body;
  if (state.segments.length) {
    body = { segments: state.segments.map((s) => ({ ...s })) };
  } else {
    const prompt = $("prompt").value.trim() || $("prompt").placeholder;
    $("prompt").value = prompt;
    body = { prompt, seconds: Number($("seconds").value) || null };
  }
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  if (state.model?.sampling.guidance_available) body.guidance = Number($("guidance").value);
  $("generate").disabled = true;
  setStatus("Generating…");
  const began = performance.now();
  let motion = null;
  try {
    const done = await generate(
      body,
      (start) => {
        motion = { prompt: start.prompt, seed: start.seed, fps: start.fps, frames: 0, joints: new Float32Array(0),
                   floor: 0, files: {}, complete: false, segments: body.segments ?? null, took: 0 };
      },
      (start, joints) => {
        appendFrames(motion, joints);
        if (state.motion !== motion) show(motion);  // play from the first chunk on
        setStatus(`Generating… ${(motion.frames / motion.fps).toFixed(1)} s received`);
      },
    );
    Object.assign(motion, { id: done.id, files: done.files, complete: true, segments: done.segments ?? motion.segments,
                            took: (performance.now() - began) / 1000 });
    state.history.unshift(motion);
    if (state.motion === motion) { showDownloads(motion); renderSegmentBar(motion); renderHistory(); }
    setStatus(`Made ${(motion.frames / motion.fps).toFixed(1)} s of motion in ${motion.took.toFixed(2)} s (seed ${motion.seed}).`
              + (done.warning ? ` Note: ${done.warning}` : ""));  // the model knows no movement like the prompt
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    $("generate").disabled = false;
  }
});

$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("generate-form").requestSubmit();
});
$("dice").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 1e6); });
$("guidance").addEventListener("input", () => { $("guidance-value").textContent = Number($("guidance").value).toFixed(1); });

// ------------------------------------------------------------------ transport
function togglePlay() {
  if (!state.motion) return;
  const end = (state.motion.frames - 1) / state.motion.fps;
  if (!state.playing && state.time >= end) state.time = 0;
  state.playing = !state.playing;
}
$("play").addEventListener("click", togglePlay);
window.addEventListener("keydown", (event) => {
  if (event.code === "Space" && !["TEXTAREA", "INPUT", "SELECT"].includes(document.activeElement.tagName)) {
    event.preventDefault();
    togglePlay();
  }
});
$("scrubber").addEventListener("input", () => {
  state.playing = false;
  state.time = Number($("scrubber").value) / state.motion.fps;
});

let lastTick = performance.now();
const followed = new THREE.Vector3();
function animate() {
  requestAnimationFrame(animate);
  const now = performance.now();
  const dt = Math.min((now - lastTick) / 1000, 0.1);
  lastTick = now;
  const motion = state.motion;
  if (motion) {
    const end = (motion.frames - 1) / motion.fps;
    if (state.playing) {
      state.time += dt * Number($("speed").value);
      if (state.time > end) {
        if (!motion.complete) state.time = end;  // wait for the next chunk
        else if ($("loop").checked) state.time %= end;
        else { state.time = end; state.playing = false; }
      }
    }
    const p = poseAt(motion, state.time);
    state.mannequin.setPose(p);
    state.frame = Math.round(state.time * motion.fps);
    $("scrubber").value = state.frame;
    $("time").textContent = `${state.time.toFixed(2)} / ${end.toFixed(2)} s`;
    $("play").innerHTML = state.playing ? "&#10073;&#10073;" : "&#9654;";
    followed.set(p[0], TARGET_HEIGHT, p[2]);
    if ($("follow").checked) {
      const shift = followed.clone().sub(controls.target);
      controls.target.add(shift);
      camera.position.add(shift);
    }
    sun.target.position.set(p[0], 0, p[2]);
    sun.position.set(p[0] + 3, 6, p[2] + 2.5);
  }
  controls.update();
  renderer.render(scene, camera);
}

// ------------------------------------------------------------------ start
async function start() {
  resize();
  animate();
  const model = await (await fetch("/v1/model")).json();
  state.model = model;
  state.mannequin = new Mannequin(scene, model.joint_names, model.parents);
  standStill(model.rest_pose);
  const defaults = model.sampling.defaults;
  $("seconds").max = model.max_seconds;
  $("seconds").min = Math.max(model.min_seconds, 0.5);
  $("guidance").value = defaults.guidance ?? 1;
  $("guidance").disabled = !model.sampling.guidance_available;
  $("guidance-value").textContent = Number($("guidance").value).toFixed(1);
  const licence = /CC BY[-\w ]*?\d\.\d/.exec(model.licence ?? "")?.[0];
  $("model-info").textContent = [model.model_card?.title, licence && `weights: ${licence}`, `${model.fps} fps, up to ${model.max_seconds} s`]
    .filter(Boolean).join(" · ");
  $("timeline-section").hidden = !model.timelines;
  renderTimeline();
  state.ready = true;
}
start();
