// Load a BVH with three.js's BVHLoader, play it and print every joint's world position at every frame
// as JSON: {"names": [...], "positions": [[[x,y,z]...]...]} in file units. three.js cannot bind track
// names containing ':' (Mixamo's "mixamorig:Hips"), so ':' is read as '_' and names are given back.
// usage: node bvh_joints.mjs FILE.bvh
import { readFile } from "node:fs/promises";
import * as THREE from "three";
import { BVHLoader } from "three/examples/jsm/loaders/BVHLoader.js";

const text = (await readFile(process.argv[2], "utf8")).replaceAll(":", "_");
const result = new BVHLoader().parse(text);
const bones = result.skeleton.bones.filter((b) => !b.name.startsWith("ENDSITE"));
const root = result.skeleton.bones[0];
const mixer = new THREE.AnimationMixer(root);
const action = mixer.clipAction(result.clip);
action.setLoop(THREE.LoopOnce, 1);
action.clampWhenFinished = true;
action.play();
const frames = result.clip.tracks[0].times.length;
const positions = [];
const v = new THREE.Vector3();
for (let f = 0; f < frames; f++) {
  mixer.setTime(result.clip.tracks[0].times[f]);
  root.updateMatrixWorld(true);
  positions.push(bones.map((b) => b.getWorldPosition(v).toArray()));
}
console.log(JSON.stringify({ names: bones.map((b) => b.name), positions }));
