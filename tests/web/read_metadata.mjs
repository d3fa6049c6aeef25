// Prints what the page's onnx_metadata.js reads from the model file argv[2]: the document, or its error.
import { readFileSync } from 'node:fs';
import { readModelMetadata } from '../../runtime/src/ddpm_runtime/web/onnx_metadata.js';

try {
  console.log(JSON.stringify({ metadata: readModelMetadata(new Uint8Array(readFileSync(process.argv[2])), process.argv[2]) }));
} catch (err) {
  console.log(JSON.stringify({ error: err.message }));
}
