import { readFile } from "node:fs/promises";
import yaml from "js-yaml";
import { ConfigError } from "../Errors.js";
import { type ParsedConfig, parseConfig } from "./Config.js";

export function parseConfigYaml(text: string, fileName: string): ParsedConfig {
    let raw: unknown;
    try {
        raw = yaml.load(text, { filename: fileName });
    } catch (err) {
        throw new ConfigError("", `${fileName} is not valid YAML: ${(err as Error).message}`);
    }
    return parseConfig(raw);
}

export async function loadConfigFile(path: string): Promise<ParsedConfig> {
    let text: string;
    try {
        text = await readFile(path, "utf8");
    } catch (err) {
        throw new ConfigError("", `Cannot read config file ${path}: ${(err as Error).message}`);
    }
    return parseConfigYaml(text, path);
}
