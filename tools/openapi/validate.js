// validate.js: check an OpenAPI document (docs/openapi.yaml) with swagger-parser:
// the OpenAPI 3.0 JSON schema, every $ref resolving, and the rules the schema cannot
// express (unique operationIds, path parameters declared once and used, ...).
// usage: node tools/openapi/validate.js FILE...   (exit 0 valid, 1 invalid, 2 usage)
'use strict';
const SwaggerParser = require('@apidevtools/swagger-parser');

async function check(file) {
  try {
    // validate() dereferences its input; parse separately to count what was checked.
    const api = await SwaggerParser.validate(file);
    if (!/^3\.0\.\d+$/.test(api.openapi || ''))
      throw new Error(`'openapi: ${api.openapi}' is not 3.0.x (the version this project writes)`);
    const paths = Object.keys(api.paths || {});
    let operations = 0;
    for (const p of paths)
      for (const m of ['get', 'head', 'post', 'put', 'patch', 'delete'])
        if (api.paths[p][m]) operations++;
    console.log(`${file}: valid OpenAPI ${api.openapi}, ${paths.length} paths, ${operations} operations`);
    return true;
  } catch (e) {
    console.error(`${file}: ${e.message}`);
    return false;
  }
}

(async () => {
  const files = process.argv.slice(2);
  if (!files.length) {
    console.error('usage: node validate.js FILE...');
    process.exit(2);
  }
  let ok = true;
  for (const f of files) ok = (await check(f)) && ok;
  process.exit(ok ? 0 : 1);
})();
