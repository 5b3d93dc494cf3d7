/** The package's public API: embed the appservice, or write modules against the module API. */
export { start, type RunningApp, type StartOptions } from "./App.js";
export { ConfigError, InvalidConfigError, StartupError } from "./Errors.js";
export { type AppConfig, configSchema, parseConfig } from "./config/Config.js";
export { loadConfigFile, parseConfigYaml } from "./config/loadConfig.js";
export { AuditModule, auditMessageBody } from "./modules/AuditModule.js";
export type { AuditModuleConfig } from "./config/AuditModuleConfig.js";
export type {
    AccountDataCallbacks,
    AccountDataContent,
    ChangeInfo,
    EventToSend,
    ModuleApi,
    ModuleClass,
    OnAccountDataUpdated,
    SendOptions,
} from "./modules/ModuleApi.js";
export { EventTooLargeError, SendFailedError } from "./matrix/SendErrors.js";
export { LosslessNumber, LosslessObject, parseLossless, toPlainJson } from "./json/LosslessJson.js";
export { pythonDumps as pythonJsonDumps } from "./json/PythonJson.js";
