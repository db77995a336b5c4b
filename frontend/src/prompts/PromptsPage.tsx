export const PromptsPage = () => <div className="page" />
