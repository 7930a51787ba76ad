/**
 * Field-name check for rendered Kubernetes objects. kubernetes-models' validate() checks types
 * but ignores fields it does not know (a misspelled `imagePullPolicyy` or `readinesProbe` passes),
 * and the package ships compiled validators, not JSON schemas. It does ship a TypeScript
 * interface for every kind, generated from the same OpenAPI schemas; so this type-checks each
 * object as an object literal of its kind's interface (`const o: IDeployment = {...}`), where
 * TypeScript's excess-property check rejects every unknown field, at any depth, and reports
 * wrong types and enum values too.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import type { K8sObject } from './kustomize.js';
import { objectId } from './kustomize.js';

export interface FieldFinding {
  object: string;
  /** JSON path inside the object, like spec.template.spec.containers[0].imagePullPolicyy */
  path: string;
  message: string;
}

/** The kubernetes-models module of a kind: apps/v1 Deployment -> kubernetes-models/apps/v1/Deployment. */
function modelModule(apiVersion: string, kind: string): string {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

/** The file of a kind's kubernetes-models module, or undefined when it has none (it knows the built-in API groups). */
function modelFile(apiVersion: string, kind: string): string | undefined {
  let url: string;
  try {
    url = import.meta.resolve(modelModule(apiVersion, kind));
  } catch {
    return undefined; // an API group the package does not export
  }
  // The package's exports map every name under a group version to a file, existing or not.
  const file = fileURLToPath(url);
  return existsSync(file) ? file : undefined;
}

/** Whether kubernetes-models has a model for the kind. */
export function hasModel(apiVersion: string, kind: string): boolean {
  return modelFile(apiVersion, kind) !== undefined;
}

export type ModelClass = new (data: unknown) => { validate(): void };

/** The model class of a kind, or undefined (kubernetes-models 5 is ES modules only: imported). */
export async function modelClass(apiVersion: string, kind: string): Promise<ModelClass | undefined> {
  const file = modelFile(apiVersion, kind);
  return file === undefined ? undefined : ((await import(pathToFileURL(file).href)) as Record<string, ModelClass | undefined>)[kind];
}

function pathAt(sf: ts.SourceFile, pos: number): { index: number; path: string } {
  let index = -1;
  let out = '';
  let node: ts.Node = sf;
  for (;;) {
    const child = node.getChildren(sf).find((c) => c.getStart(sf) <= pos && pos < c.getEnd());
    if (!child) break;
    node = child;
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && /^o\d+$/.test(node.name.text)) {
      index = Number(node.name.text.slice(1));
    } else if (ts.isPropertyAssignment(node) && (ts.isStringLiteral(node.name) || ts.isIdentifier(node.name))) {
      out += out ? `.${node.name.text}` : node.name.text;
    } else if (node.kind !== ts.SyntaxKind.SyntaxList && node.parent && ts.isArrayLiteralExpression(node.parent)) {
      out += `[${node.parent.elements.indexOf(node as ts.Expression)}]`;
    }
  }
  return { index, path: out };
}

/**
 * Type-checks every object against its kind's interface. Objects whose kind kubernetes-models
 * does not know are reported as such. `root` is where node_modules/kubernetes-models is found.
 */
export function checkFieldNames(objects: K8sObject[], root: string): FieldFinding[] {
  const findings: FieldFinding[] = [];
  const lines: string[] = [];
  objects.forEach((o, i) => {
    if (!hasModel(o.apiVersion, o.kind)) {
      findings.push({ object: objectId(o), path: 'kind', message: `no Kubernetes model for ${o.apiVersion} ${o.kind}` });
      return;
    }
    lines.push(`import type { I${o.kind} as T${i} } from '${modelModule(o.apiVersion, o.kind)}';`);
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(o, null, 1)};`);
  });
  if (!lines.length) return findings;

  const fileName = path.join(root, '__deploy_field_check__.ts');
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    types: [],
  };
  const host = ts.createCompilerHost(options, true);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (name, language, ...rest) =>
    name === fileName ? ts.createSourceFile(name, source, language, true) : getSourceFile(name, language, ...rest);
  host.fileExists = (name) => name === fileName || fileExists(name);
  host.readFile = (name) => (name === fileName ? source : readFile(name));
  const program = ts.createProgram([fileName], options, host);
  const sf = program.getSourceFile(fileName)!;
  for (const d of [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)]) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    const where = d.start !== undefined ? pathAt(sf, d.start) : { index: -1, path: '' };
    const o = objects[where.index];
    findings.push({ object: o ? objectId(o) : '(field check)', path: where.path, message });
  }
  return findings;
}
