// Load a .glb with three.js's GLTFLoader, play its first animation and print the world position of
// every named node at every keyframe time, as JSON: {"names": [...], "times": [...], "positions": [[[x,y,z]...]...]}.
// usage: node joints.mjs FILE.glb NAME,NAME,...
import { readFile } from "node:fs/promises";
import * as THREE from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";

const [path, nameList] = process.argv.slice(2);
const data = await readFile(path);
const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
const gltf = await new Promise((resolve, reject) => new GLTFLoader().parse(buffer, "", resolve, reject));
const clip = gltf.animations[0];
const names = nameList.split(",");
const nodes = names.map((n) => {
  const node = gltf.scene.getObjectByName(n);
  if (!node) throw new Error(`no node named ${n}`);
  return node;
});
const mixer = new THREE.AnimationMixer(gltf.scene);
const action = mixer.clipAction(clip);
action.setLoop(THREE.LoopOnce, 1);
action.clampWhenFinished = true; // the last key must not wrap round to the first
action.play();
const times = Array.from(clip.tracks[0].times);
const positions = [];
const v = new THREE.Vector3();
for (const t of times) {
  mixer.setTime(t);
  gltf.scene.updateMatrixWorld(true);
  positions.push(nodes.map((node) => node.getWorldPosition(v).toArray()));
}
console.log(JSON.stringify({ names, times, positions, duration: clip.duration, skinned: gltf.scene.getObjectByName("mannequin")?.isSkinnedMesh ?? false }));
