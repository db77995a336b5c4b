export const PromptPage = ({ id }: { readonly id: string }) => <div className="page">{id}</div>
