// Types just wide enough for matrix-bot-sdk's declarations to compile; nothing here works at run time.
export declare enum StoreType {
    Sled = 0,
    Sqlite = 1,
}
export declare class OlmMachine {
    private constructor();
}
