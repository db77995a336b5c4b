export const RunPage = ({ id }: { readonly id: string }) => <div className="page">{id}</div>
