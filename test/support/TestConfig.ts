import { ConfigProvider, Layer } from "effect"
import * as Config from "../../src/layers/Config.ts"

/** AppConfig from the given variables alone (no environment, no .env). */
export const testConfig = (
  env: Record<string, string> = {}
): Layer.Layer<Config.AppConfig, Config.ConfigInvalid> =>
  Config.layerFrom(ConfigProvider.fromMap(new Map(Object.entries(env))))
