// Prints rng-free schedule maths of the page (schedule.js, timesteps.js) for the configs on argv[2].
import { NoiseSchedule } from '../../runtime/src/ddpm_runtime/web/schedule.js';
import { samplingTimesteps } from '../../runtime/src/ddpm_runtime/web/timesteps.js';

const { configs, steps, probes } = JSON.parse(process.argv[2]);
const out = configs.map((config) => {
  const schedule = new NoiseSchedule(config);
  const times = {};
  for (const spacing of ['trailing', 'logsnr', 'karras']) times[spacing] = steps.map((s) => samplingTimesteps(schedule, s, spacing));
  return { alphaBars: Array.from(schedule.alphaBars), probes: probes.map((t) => schedule.alphaBarAt(t)), times };
});
console.log(JSON.stringify(out));
